// BlockCore is the block layer's front door: the format registry (`openDisk`, `probeFormat`)
// over the modules below it, re-exported so that `import BlockCore` gives a library user the
// whole block layer (docs/adr/0017-format-modules.md).
@_exported import BlockIO
@_exported import BlockInspect
@_exported import BlockMap
@_exported import Raw
@_exported import Qcow2
@_exported import Vhdx
@_exported import Vhd
@_exported import Vmdk
