"""PC/SC: the reader half (`reader.PcscReader`, through pcscd with pyscard), the card half (`vpcd.VpcdEndpoint`,
a Card OS in a slot of vsmartcard's vpcd driver) and the daemon they meet in (`daemon.Pcscd`, which starts
pcscd when no usable one runs, and `daemon.session_lock` for test sessions sharing it).

Imported one module at a time: only `reader` needs pyscard.
"""
