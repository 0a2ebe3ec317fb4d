/**
 * A store server's clock compared with ours, estimated from replies that
 * carry the server's time, NTP's way: the server read its clock about halfway
 * through the round trip, give or take half of it. The stores that refuse a
 * late write (Redis, SQL, MongoDB) send deadlines in the server's clock:
 * `localDeadline + offset`.
 */
export class ServerClock {
  /** The server's clock minus ours, in ms; 0 until a reply says otherwise. */
  offset = 0;
  private quickest = Infinity;

  /** `quickEnough`: a round trip (ms) short enough to trust whatever the quickest seen so far. */
  constructor(private readonly quickEnough: number) {}

  /** A reply sent at `sentAt` and received at `receivedAt` (our clock) that carries the server's `serverNow`. */
  sample(serverNow: number, sentAt: number, receivedAt: number): void {
    const roundTrip = receivedAt - sentAt;
    const measured = serverNow - (sentAt + receivedAt) / 2; // within ± roundTrip / 2
    this.quickest = Math.min(this.quickest, roundTrip);
    // A reply about as quick as the quickest refines the estimate. A slower one says little about when the server
    // read its clock, and is taken only when it proves the estimate wrong by more than its own uncertainty (a
    // server whose clock jumped, or a slow moment just when a refusal needs the offset corrected).
    if (roundTrip <= Math.max(this.quickEnough, 2 * this.quickest) || Math.abs(measured - this.offset) > roundTrip) {
      this.offset = measured;
    }
  }
}
