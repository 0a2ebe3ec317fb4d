/**
 * The base class's store budget: a store call made when the request's budget
 * is already spent fails as the store being unavailable (a 503), not with an
 * error of its own making (it once threw a ReferenceError there, a 500).
 */
import { ServerSideSessionInterface, SessionStoreUnavailableError } from '../../lib/index.js';
import type { StoreCall } from '../../lib/server-side/server-side.session-interface.js';

class BudgetProbe extends ServerSideSessionInterface {
  protected readonly storeName = 'probe';
  calls = 0;
  protected async readRecord() {
    this.calls++;
    return null;
  }
  protected async swapRecord() {
    return { swapped: true as const };
  }
  protected async replaceRecord() {}
  protected async deleteRecord() {}
  protected async refreshRecord() {}
  /** One store call for a request that already spent `spentMs` of its budget in store calls. */
  run(spentMs: number) {
    return this.callStore({ ms: spentMs }, (_call: StoreCall) => this.readRecord());
  }
}

test('a call after the deadline is a 503 naming the budget, and runs nothing', async () => {
  const probe = new BudgetProbe({ storeTimeout: 100 });
  const failure = probe.run(100);
  await expect(failure).rejects.toBeInstanceOf(SessionStoreUnavailableError);
  await expect(failure).rejects.toMatchObject({ message: expect.stringContaining("the request's store budget of 100 ms (storeTimeout) ran out") });
  expect(probe.calls).toBe(0);
});

test('a call within the deadline runs', async () => {
  const probe = new BudgetProbe({ storeTimeout: 100 });
  await expect(probe.run(40)).resolves.toBeNull();
  expect(probe.calls).toBe(1);
});
