import BlockCore

extension TUIApp {
    /// Moves the view a jump opened to ``AppState/pendingGoto`` (the Map turns to that
    /// space's grid first) and says where it went; clears the request.
    func applyPendingGoto() {
        guard let g = state.pendingGoto else { return }
        state.pendingGoto = nil
        (currentView as? MapView)?.focus(on: g.space)
        guard currentView.gotoSpace == g.space else { return }
        let n = currentView.goto(g.offset, state)
        state.sayInView(n.text, n.role)
    }
}
