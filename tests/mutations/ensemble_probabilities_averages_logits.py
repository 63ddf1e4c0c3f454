DESCRIPTION = ("EnsembleKDLoss's average='probabilities' averages the teachers' logits (and "
               "'logits' their probabilities)")
FILE = 'kdzoo/losses/ensemble.py'
FIND = '''    if average == 'probabilities':
        logs = torch.stack('''
REPLACE = '''    if average == 'logits':
        logs = torch.stack('''
TESTS = ['tests/test_ensemble_losses.py']
SELECT = 'test_ensemble_matches_its_definition'
