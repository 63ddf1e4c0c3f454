DESCRIPTION = "CA-MKD's teacher weights from the batch-averaged cross-entropies, not per sample"
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    share = torch.softmax(ce, dim=0)
'''
REPLACE = '''    share = torch.softmax(ce.mean(dim=1, keepdim=True), dim=0).expand_as(ce)
'''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'camkd_matches_its_definition or favour_lower'
