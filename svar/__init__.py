"""svar: semi-supervised video action recognition with a vision-language teacher."""

__version__ = "0.1.0"
