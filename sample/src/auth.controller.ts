import { Body, Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { Session, SessionInterface, type SessionMixin } from 'nest-session';
import { LoggedInGuard } from './logged-in.guard.js';

type UserSession = { user?: string; visits?: number };

@Controller()
export class AuthController {
  constructor(private readonly sessions: SessionInterface) {}

  @Post('login')
  @HttpCode(200)
  async login(@Session() session: SessionMixin<UserSession>, @Body('user') user = 'guest') {
    session.clear(); // start clean: nothing from before the login survives it
    // A new identity at login, so a planted session id is useless (session fixation).
    await this.sessions.regenerate(session);
    session.set('user', user);
    session.permanent = true; // keep the login for permanentSessionLifetime (31 days)
    return { loggedInAs: user };
  }

  @Post('logout')
  @HttpCode(200)
  logout(@Session() session: SessionMixin<UserSession>) {
    session.clear(); // an empty session deletes its cookie
    return { loggedOut: true };
  }

  @Get('me')
  @UseGuards(LoggedInGuard)
  me(@Session('user') user: string) {
    return { user };
  }
}
