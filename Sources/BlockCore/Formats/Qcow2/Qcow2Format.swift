/// Entry point of the qcow2 format for the factory.
public enum Qcow2Format {
    /// Opens an image of this format from an open host file.
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        throw BlockError(.unsupportedFeature, "qcow2 images are not supported yet", path: file.path, operation: "open")
    }
}
