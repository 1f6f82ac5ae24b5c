/// Entry point of the vpc format for the factory.
public enum VhdFormat {
    /// Opens an image of this format from an open host file.
    public static func open(file: SystemFile, options: OpenOptions, warnings: [String]) throws(BlockError) -> any DiskFile {
        throw BlockError(.unsupportedFeature, "vpc images are not supported yet", path: file.path, operation: "open")
    }
}
