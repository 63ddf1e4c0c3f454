DESCRIPTION = "the synthesizer's BatchNorm-statistics term is detached (logged, not optimised)"
FILE = 'kdzoo/synthesis/synthesizer.py'
FIND = '''        bn = self.alpha_bn * self.bn_loss()
'''
REPLACE = '''        bn = self.alpha_bn * self.bn_loss().detach()
'''
TESTS = ['tests/test_dfkd_synthesizer.py']
SELECT = 'each_term and bn'
