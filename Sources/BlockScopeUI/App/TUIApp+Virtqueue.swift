import BlockCore

extension TUIApp {
    /// Explains `e` for step mode and the step line: ``Explain/line(_:_:op:)``, and for an
    /// engine event of a virtqueue's request (`tui --serve vhost-user:`) which of the six
    /// virtqueue stages it stands for and what comes next (``VirtqWords/engineStage(_:)``).
    func stepWords(_ e: IoEvent, _ context: ExplainContext, op: GuestOp?) -> String {
        let line = Explain.line(e, context, op: op)
        guard let stage = VirtqWords.engineStage(e),
              state.queueRates.queues.contains(where: { $0.open && $0.queue == Int(e.queue) && $0.ring != nil }) else { return line }
        return line + " — " + stage
    }
}
