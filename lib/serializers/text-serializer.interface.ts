/**
 * Turns a session's data into text and back. Flask's cookie uses
 * {@link TaggedJsonSerializer}; a custom one can be set on
 * `SecureCookieSessionInterface.serializer`.
 *
 * @publicApi
 */
export interface TextSerializer {
  dumps(value: unknown): string;
  loads(text: string): unknown;
}
