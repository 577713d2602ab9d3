"""ptycho"""
