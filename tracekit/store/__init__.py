"""tracekit/store"""
