"""instrumentors"""
