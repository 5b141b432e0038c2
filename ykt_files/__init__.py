"""ykt_files: how ykt reads and writes its files — one schema layer and atomic writes.

The bottom floor of the house: every other package may use it, it uses none of them. Key sets, profiles,
images, scripts, lists and outcomes are validated by models built on `ykt_files.schema`, so every
refusal reads `<file>: <field>: <reason>`; images, exports and reports are written by
`ykt_files.atomic`.
"""
