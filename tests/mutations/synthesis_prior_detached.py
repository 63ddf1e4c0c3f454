DESCRIPTION = "the synthesizer's image-prior term is detached (logged, not optimised)"
FILE = 'kdzoo/synthesis/synthesizer.py'
FIND = '''        prior = self.prior(images)
'''
REPLACE = '''        prior = self.prior(images.detach())
'''
TESTS = ['tests/test_dfkd_synthesizer.py']
SELECT = 'each_term and prior'
