DESCRIPTION = "CRD contrasts each side's embedding with its own side's bank"
FILE = 'kdzoo/losses/crd.py'
FIND = '''            s_s = self._scores(f_s, self.memory_teacher, indices, negatives)
            s_t = self._scores(f_t, self.memory_student, indices, negatives)
'''
REPLACE = '''            s_s = self._scores(f_s, self.memory_student, indices, negatives)
            s_t = self._scores(f_t, self.memory_teacher, indices, negatives)
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'crd_matches_float64'
