DESCRIPTION = "ViTKD's generation loss taken on every token, not only on the masked ones"
FILE = 'kdzoo/losses/vitkd.py'
FIND = '''        diff = (x.flatten(2).transpose(1, 2) - teacher) * mask
'''
REPLACE = '''        diff = x.flatten(2).transpose(1, 2) - teacher
'''
TESTS = ['tests/test_zoo_vit_losses.py']
SELECT = 'vitkd and mask'
