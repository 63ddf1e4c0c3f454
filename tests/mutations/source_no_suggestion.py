DESCRIPTION = "an unknown layer source ('teacher.logit') gets no suggestion of the close ones"
FILE = 'kdzoo/models/sources.py'
FIND = '''    return [short[c] for c in difflib.get_close_matches(name, list(short), n=3, cutoff=0.6)]'''
REPLACE = '''    return []'''
TESTS = ['tests/test_teacher_sources.py']
SELECT = 'suggest_the_closest'
