"""adamrepro: the experiments of Kingma & Ba, "Adam: A Method for Stochastic Optimization"."""

__version__ = "0.1.0"
