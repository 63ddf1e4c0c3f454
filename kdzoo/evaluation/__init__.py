from .heads_accuracy import HeadsAccuracy

__all__ = ['HeadsAccuracy']
