"""certrotate's pure logic: PKI, certs dirs, state, transport and the rotation engine.

Nothing in this package imports Textual; the wizard and the CLI in `tui` sit on top.
"""
