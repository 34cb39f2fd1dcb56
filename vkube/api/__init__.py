"""vkube.api"""
