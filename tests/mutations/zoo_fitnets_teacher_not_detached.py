DESCRIPTION = 'FitNetsLoss lets the gradient reach the teacher hint layer (not detached)'
FILE = 'kdzoo/losses/fitnets.py'
FIND = '''            return F.mse_loss(s.float(), t.detach().float())
'''
REPLACE = '''            return F.mse_loss(s.float(), t.float())
'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'fitnets_matches'
