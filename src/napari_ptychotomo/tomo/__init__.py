"""tomo"""
