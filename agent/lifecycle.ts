/**
 * The agent's lifecycle: a list of components started in order and stopped in reverse (zigbee2mqtt's start/stop,
 * style.md 12). A component whose start fails stops, in reverse, those already started; `stop()` stops only what
 * was started, once, and goes on past a component whose stop fails (the first such error is thrown at the end).
 */

export interface Component {
  readonly name: string;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
}

/** A component's start failed; `component` names it, `cause` is what it threw. */
export class LifecycleError extends Error {
  constructor(
    readonly component: string,
    override readonly cause: unknown,
  ) {
    super(`${component}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'LifecycleError';
  }
}

export class Lifecycle {
  /** Started components, in start order. */
  private readonly started: Component[] = [];

  constructor(private readonly components: readonly Component[]) {
    const names = components.map((c) => c.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`lifecycle component ${twice} is listed twice`);
  }

  names(): string[] {
    return this.components.map((c) => c.name);
  }

  /**
   * Starts every component in order.
   * @throws LifecycleError naming the component that failed, after the ones started before it were stopped.
   */
  async start(): Promise<void> {
    if (this.started.length > 0) throw new Error('the lifecycle is already started');
    for (const c of this.components) {
      try {
        await c.start();
      } catch (e) {
        await this.stop().catch(() => undefined);
        throw new LifecycleError(c.name, e);
      }
      this.started.push(c);
    }
  }

  /** Stops the started components in reverse; a second call does nothing. @throws the first stop error. */
  async stop(): Promise<void> {
    let first: unknown = null;
    for (let c = this.started.pop(); c; c = this.started.pop()) {
      try {
        await c.stop();
      } catch (e) {
        first ??= new LifecycleError(c.name, e);
      }
    }
    if (first) throw first;
  }
}
