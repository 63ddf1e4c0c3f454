DESCRIPTION = "the student's image comes from a second run of the pipeline, not from the view's"
FILE = 'kdzoo/datasets/views.py'
FIND = '''    sample['inputs'] = resize_image(img, own)
'''
REPLACE = '''    sample['inputs'] = run()['inputs']
'''
TESTS = ['tests/test_views.py']
SELECT = 'same_sample or pixels'
