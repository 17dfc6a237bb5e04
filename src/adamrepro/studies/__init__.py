"""The studies beside the figures' protocols, each a command that trains and reports: Figure
2 (b)'s protocol (`fig2b_study`), SFO (`sfo_run`, `sfo_study`), the small problems
(`small_problems`), the JPEG copy of CIFAR-10 (`copycheck`), bf16-mixed (`precision_check`)
and successive halving (`halving_check`)."""
