import { Injectable } from '@nestjs/common';
import { SessionInterface } from 'nest-session';
import type { SampleSession } from './sample-session.js';

/** Logging in and out, shared by the JSON routes and the page's forms. */
@Injectable()
export class AuthService {
  constructor(private readonly sessions: SessionInterface) {}

  async logIn(session: SampleSession, user: string): Promise<void> {
    session.clear(); // start clean: nothing from before the login survives it
    // A new identity at login, so a planted session id is useless (session fixation).
    await this.sessions.regenerate(session);
    session.set('user', user);
    session.permanent = true; // keep the login for permanentSessionLifetime (31 days)
  }

  logOut(session: SampleSession): void {
    session.clear(); // an empty session deletes its cookie
  }
}
