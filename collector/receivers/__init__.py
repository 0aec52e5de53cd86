"""collector/receivers"""
