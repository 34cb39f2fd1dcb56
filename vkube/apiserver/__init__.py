"""vkube.apiserver"""
