import Delivery
import Foundation
import Status
import Synchronization

/// The figures the worker threads update and the status publisher reads: per-worker
/// counters, and the sender's health (`DeliveryPause`).
final class PoolMetrics: Sendable {
    private struct State {
        var workers: [WorkerMetrics]
        var totalSeconds: [Double]
        var recordingTrouble: String?
    }

    private let state: Mutex<State>
    let pause: DeliveryPause
    /// The Prometheus side of the same figures.
    let prometheus: DeliveryMetrics

    init(workers: Int, pause: DeliveryPause) {
        self.pause = pause
        prometheus = DeliveryMetrics(workers: workers)
        state = Mutex(
            State(
                workers: (1...max(1, workers)).map { WorkerMetrics(workerID: $0) },
                totalSeconds: Array(repeating: 0, count: max(1, workers))
            )
        )
    }

    func setRunning(_ worker: Int, _ running: Bool) {
        state.withLock { $0.workers[worker - 1].running = running }
    }

    func claimed(_ worker: Int, file: String?) {
        state.withLock { $0.workers[worker - 1].currentBatch = file }
    }

    func finished(_ worker: Int, _ attempt: DeliveryAgent.Attempt) {
        prometheus.record(attempt)
        state.withLock { state in
            let i = worker - 1
            state.workers[i].currentBatch = nil
            if case .sent = attempt.outcome {
                state.workers[i].emailsSent += 1
            } else {
                state.workers[i].emailsFailed += 1
            }
            state.totalSeconds[i] += attempt.seconds
            let attempts = state.workers[i].emailsSent + state.workers[i].emailsFailed
            state.workers[i].avgLatencyMs = (state.totalSeconds[i] / Double(attempts) * 1000 * 1000).rounded() / 1000
        }
    }

    /// Why a worker cannot record an outcome right now, or nil (see `DeliveryAgent`).
    func setRecordingTrouble(_ trouble: String?) {
        state.withLock { $0.recordingTrouble = trouble }
    }

    var snapshot: (workers: [WorkerMetrics], sender: SenderHealth) {
        (state.withLock { $0.workers }, pause.health)
    }

    var recordingTrouble: String? {
        state.withLock { $0.recordingTrouble }
    }
}
