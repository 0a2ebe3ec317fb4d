import {
  Body,
  Catch,
  Controller,
  Get,
  Header,
  HttpException,
  Post,
  Redirect,
  UseFilters,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import type { Response } from 'express';
import { SecureCookieSessionInterface, Session, SessionInterface } from 'nest-session';
import { AuthService } from './auth.service.js';
import { renderPage } from './page.view.js';
import { flash, takeFlashes, type SampleSession } from './sample-session.js';
import { ShopService } from './shop.service.js';

/** A form field as text: trimmed, at most 40 characters, `undefined` when blank or not text. */
function formText(value: unknown): string | undefined {
  const text = typeof value === 'string' ? value.trim().slice(0, 40) : '';
  return text || undefined;
}

/** Sends the browser back to the page after a form route threw; the message it flashed explains. */
@Catch(HttpException)
class BackToThePageFilter implements ExceptionFilter {
  catch(_error: HttpException, host: ArgumentsHost) {
    host.switchToHttp().getResponse<Response>().redirect(303, '/');
  }
}

/**
 * The page a person uses in a browser. `GET /` shows the session; each form
 * posts to a route under /form/ that does what the JSON route of the same name
 * does, flashes what happened and redirects back to `/` (303, post-redirect-get),
 * so reloading the page never posts twice.
 */
@Controller()
export class PageController {
  constructor(
    private readonly shop: ShopService,
    private readonly auth: AuthService,
    private readonly sessions: SessionInterface,
  ) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  // The page shows the session: Back or a cache must never show an old one.
  @Header('Cache-Control', 'no-store')
  // Everything from the session is escaped; this forbids scripts anyway.
  @Header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
  page(@Session() session: SampleSession): string {
    // Taken first: a session holding nothing else is then empty, and its cookie is deleted.
    const flashes = takeFlashes(session);
    return renderPage({
      data: session.toJSON(),
      permanent: session.permanent,
      flashes,
      storage:
        this.sessions instanceof SecureCookieSessionInterface
          ? 'a signed cookie: the data travels in the cookie, signed with SECRET_KEY'
          : `a server-side store (${this.sessions.constructor.name}): the cookie holds only a session id`,
      flaskUrl: process.env.FLASK_URL,
    });
  }

  @Post('form/counter')
  @Redirect('/', 303)
  count(@Session() session: SampleSession) {
    flash(session, `Counted: the counter is now ${this.shop.count(session)}.`);
  }

  @Post('form/cart')
  @Redirect('/', 303)
  addToCart(@Session() session: SampleSession, @Body('item') item: unknown) {
    const name = formText(item) ?? 'apple';
    const cart = this.shop.addToCart(session, name);
    flash(session, `Added one ${name} to the cart (${cart.items[name]} in it now).`);
  }

  @Post('form/login')
  @Redirect('/', 303)
  async logIn(@Session() session: SampleSession, @Body('user') user: unknown) {
    const name = formText(user) ?? 'guest';
    await this.auth.logIn(session, name);
    flash(session, `Logged in as ${name}: the session started afresh, and its cookie is now permanent.`);
  }

  @Post('form/logout')
  @Redirect('/', 303)
  logOut(@Session() session: SampleSession) {
    this.auth.logOut(session);
    flash(session, 'Logged out: the session was cleared; its cookie is deleted once this message has been shown.');
  }

  @Post('form/fail')
  @UseFilters(BackToThePageFilter)
  fail(@Session() session: SampleSession) {
    const error = this.shop.failOrder(session);
    flash(session, `The order failed: the route threw ${error.getStatus()} "${error.message}", and its session was saved all the same (see Last error).`, 'error');
    throw error;
  }
}
