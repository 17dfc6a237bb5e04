"""The figures: curves against the paper's (`plot`), Figure 4's markers (`markers`), v-hat per
layer (`vhat`) and paths on 2-D surfaces (`trajectories`), drawn from run records."""
