"""tracekit"""
