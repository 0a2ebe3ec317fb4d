/**
 * Text that is safe to insert into HTML as it is: the JavaScript stand-in for
 * Python's `markupsafe.Markup`. Flask tags such values with `" m"` (for example
 * a flashed `Markup` message); nest-session reads them back as `Markup` and
 * writes any object with an `__html__()` method under the same tag.
 *
 * @publicApi
 */
export class Markup {
  constructor(readonly html: string) {}

  __html__(): string {
    return this.html;
  }

  toString(): string {
    return this.html;
  }
}
