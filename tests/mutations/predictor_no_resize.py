DESCRIPTION = "the predictor keeps CIFAR's test pipeline as it is (no resize for other sizes)"
FILE = 'kdzoo/apis/inference.py'
FIND = '''        at = 1 if kinds and kinds[0] == 'LoadImageFromFile' else 0
        return steps[:at] + added + steps[at:]'''
REPLACE = '''        return steps'''
TESTS = ['tests/test_inference.py']
SELECT = 'any_size'
