/**
 * ServerClock: the offset of a store server's clock, from replies carrying
 * its time. Each sample is (server's time, sent at, received at) in ms.
 */
import { ServerClock } from '../../lib/server-side/server-clock.js';

describe('ServerClock', () => {
  it('reads the offset off a quick reply, from the middle of its round trip', () => {
    const clock = new ServerClock(50);
    clock.sample(10_000 + 5_000, 10_000 - 4, 10_000 + 4);
    expect(clock.offset).toBe(5_000);
  });

  it('ignores a slow reply that agrees with the estimate within its own uncertainty', () => {
    const clock = new ServerClock(50);
    clock.sample(1_010, 1_000, 1_020); // offset 0, round trip 20
    clock.sample(2_900, 2_000, 3_000); // a 1 s stall after the server read its clock: measured +400, within ± 500
    expect(clock.offset).toBe(0);
  });

  it('takes a slow reply that proves the estimate wrong by more than the reply is unsure', () => {
    const clock = new ServerClock(50);
    clock.sample(1_010, 1_000, 1_020);
    clock.offset = -60_000; // as if set from a server whose clock then jumped a minute ahead
    clock.sample(2_150, 2_000, 2_300); // round trip 300, measured 0: the estimate is off by far more than 150
    expect(clock.offset).toBe(0);
  });

  it('trusts replies about as quick as the quickest seen, so a distant server is measured too', () => {
    const clock = new ServerClock(50);
    clock.sample(1_040 + 700, 1_000, 1_080); // every round trip 80 ms: over 50, but the quickest there is
    expect(clock.offset).toBe(700);
    clock.sample(2_045 + 690, 2_000, 2_090);
    expect(clock.offset).toBe(690);
    clock.sample(3_300 + 900, 3_000, 3_600); // 600 ms: 7 times the quickest, and agreeing within ± 300
    expect(clock.offset).toBe(690);
  });
});
