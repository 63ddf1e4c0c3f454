DESCRIPTION = "CRD does not re-read log_z after load_state_dict (an unset Z stays NaN)"
FILE = 'kdzoo/losses/crd.py'
FIND = '''        self._z_known = False  # read the loaded log_z (it may be unset) at the next step
'''
REPLACE = '''        pass
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'state_dict'
