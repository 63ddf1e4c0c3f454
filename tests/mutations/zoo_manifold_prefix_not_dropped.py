DESCRIPTION = "the class/distillation tokens kept and the last patch tokens dropped instead"
FILE = 'kdzoo/losses/vitkd.py'
FIND = '''    return x[:, prefix_tokens:], ((side, side) if side * side == n else None)
'''
REPLACE = '''    return x[:, :n], ((side, side) if side * side == n else None)
'''
TESTS = ['tests/test_zoo_vit_losses.py']
SELECT = 'manifold'
