DESCRIPTION = ("SPLoss normalises G's rows with F.normalize's eps: a zero sample gets a "
               "gradient 1e12 times the others' activations")
FILE = 'kdzoo/losses/similarity_preserving.py'
FIND = '''    positive = norm > 0
    return torch.where(positive, g / torch.where(positive, norm, torch.ones_like(norm)),
                       torch.zeros_like(g))'''
REPLACE = '''    return g / norm.clamp_min(1e-12)'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'sp_'
