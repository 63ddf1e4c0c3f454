DESCRIPTION = 'PKTLoss weighs the log ratio by the student probabilities (KL direction swapped)'
FILE = 'kdzoo/losses/pkt.py'
FIND = '''            return (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()'''
REPLACE = '''            return (p_s * torch.log((p_s + self.eps) / (p_t + self.eps))).mean()'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'pkt'
