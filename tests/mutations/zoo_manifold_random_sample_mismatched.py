DESCRIPTION = "ManifoldLoss's random term relates different patches of the student and teacher"
FILE = 'kdzoo/losses/manifold.py'
FIND = '''                                t.reshape(b * n, -1)[index].unsqueeze(0))
'''
REPLACE = '''                                t.reshape(b * n, -1)[index.flip(0)].unsqueeze(0))
'''
TESTS = ['tests/test_zoo_vit_losses.py']
SELECT = 'manifold and (reference or weighted)'
