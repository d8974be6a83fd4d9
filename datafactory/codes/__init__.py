"""Chinese statistical reference rules: industry and credit codes, enterprise size classes, Spring Festival dates.
Core: imports nothing outside ``datafactory``; any service may import it.
"""
