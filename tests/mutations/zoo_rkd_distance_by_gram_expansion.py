DESCRIPTION = ('RKDLoss takes distances from |x_i|^2 + |x_j|^2 - 2<x_i, x_j> (clamped): '
               'near-constant features lose their distances to cancellation')
FILE = 'kdzoo/losses/rkd.py'
FIND = '''    d = torch.cdist(x.unsqueeze(0), x.unsqueeze(0),
                    compute_mode='donot_use_mm_for_euclid_dist').squeeze(0)
'''
REPLACE = '''    sq = x.square().sum(1)
    d = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * x @ x.t()).clamp_min(1e-12).sqrt()
    d = d * (1 - torch.eye(b, dtype=d.dtype, device=d.device))
'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'rkd_matches'
