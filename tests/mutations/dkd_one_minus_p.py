DESCRIPTION = "DKD's non-target mass taken as 1 - p_target (exact only for small margins)"
FILE = 'kdzoo/losses/dkd.py'
FIND = '''    log_odds = torch.logsumexp(rest, dim=1) - scaled.gather(1, index).squeeze(1)
'''
REPLACE = '''    p_y = scaled.softmax(dim=1).gather(1, index).squeeze(1)
    log_odds = torch.log((1 - p_y).clamp_min(1e-12)) - torch.log(p_y.clamp_min(1e-12))
'''
TESTS = ['tests/test_zoo_logit_losses.py']
SELECT = 'dkd'
