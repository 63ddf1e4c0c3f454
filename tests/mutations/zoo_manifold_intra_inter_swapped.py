DESCRIPTION = "ManifoldLoss weighs the intra-image term by beta and the inter-image term by alpha"
FILE = 'kdzoo/losses/manifold.py'
FIND = '''            return self.alpha * intra + self.beta * inter + self.gamma * rand
'''
REPLACE = '''            return self.alpha * inter + self.beta * intra + self.gamma * rand
'''
TESTS = ['tests/test_zoo_vit_losses.py']
SELECT = 'manifold and (reference or weighted)'
