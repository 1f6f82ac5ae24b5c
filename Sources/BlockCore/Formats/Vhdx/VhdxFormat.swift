/// Entry point of the vhdx format for the factory.
public enum VhdxFormat {
    /// Opens an image of this format from an open host file.
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        throw BlockError(.unsupportedFeature, "vhdx images are not supported yet", path: file.path, operation: "open")
    }
}
