DESCRIPTION = "ATLoss keeps the class/distillation tokens in the student's token grid"
FILE = 'kdzoo/losses/attention_transfer.py'
FIND = '''    return x[:, num_prefix_tokens:].reshape(x.shape[0], side, side, x.shape[2])'''
REPLACE = '''    return x[:, -num_prefix_tokens - side * side:-num_prefix_tokens or None].reshape(
        x.shape[0], side, side, x.shape[2])'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'at_matches'
