import type { SessionMixin } from 'nest-session';

/** The cart as the JSON routes return it: item name → how many. */
export type Cart = { items: Record<string, number> };

/** A flashed message as Flask stores it: a (category, message) pair. */
export type Flash = [category: 'message' | 'error', message: string];

/**
 * Everything the sample keeps in its session. The Flask app next door
 * (sample/flask/app.py) reads and writes the same keys in the same cookie.
 */
export type SampleData = {
  user?: string;
  count?: number;
  cart?: Cart;
  lastError?: string;
  /** Flask's own key for flash(): both apps show each other's messages. */
  _flashes?: Flash[];
};

export type SampleSession = SessionMixin<SampleData>;

/** Flask's flash(): a message for the next page this browser shows. */
export function flash(session: SampleSession, message: string, category: Flash[0] = 'message'): void {
  session.set('_flashes', [...(session.get('_flashes') ?? []), [category, message]]);
}

/** Flask's get_flashed_messages(): the messages waiting, removed from the session. */
export function takeFlashes(session: SampleSession): Flash[] {
  return session.pop('_flashes') ?? [];
}
