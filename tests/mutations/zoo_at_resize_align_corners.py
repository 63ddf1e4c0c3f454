DESCRIPTION = "ATLoss resizes the student's attention map with align_corners=True"
FILE = 'kdzoo/losses/attention_transfer.py'
FIND = '''mode='bilinear', align_corners=False)'''
REPLACE = '''mode='bilinear', align_corners=True)'''
TESTS = ['tests/test_zoo_feature_losses.py']
SELECT = 'at_matches'
