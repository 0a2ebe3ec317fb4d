import { Body, Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { Session } from 'nest-session';
import { AuthService } from './auth.service.js';
import { LoggedInGuard } from './logged-in.guard.js';
import type { SampleSession } from './sample-session.js';

/** Logging in and out as JSON, for curl and API clients. */
@Controller()
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  @Post('login')
  @HttpCode(200)
  async login(@Session() session: SampleSession, @Body('user') user = 'guest') {
    await this.auth.logIn(session, user);
    return { loggedInAs: user };
  }

  @Post('logout')
  @HttpCode(200)
  logout(@Session() session: SampleSession) {
    this.auth.logOut(session);
    return { loggedOut: true };
  }

  @Get('me')
  @UseGuards(LoggedInGuard)
  me(@Session('user') user: string) {
    return { user };
  }
}
