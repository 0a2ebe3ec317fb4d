import { Body, Controller, Get, Post } from '@nestjs/common';
import { Session } from 'nest-session';
import type { Cart, SampleSession } from './sample-session.js';
import { ShopService } from './shop.service.js';

/** The shop as JSON, for curl and API clients. */
@Controller()
export class ShopController {
  constructor(private readonly shop: ShopService) {}

  @Post('counter')
  count(@Session() session: SampleSession) {
    return { count: this.shop.count(session) };
  }

  @Post('cart')
  add(@Session() session: SampleSession, @Body('item') item = 'apple') {
    return this.shop.addToCart(session, item);
  }

  @Get('cart')
  cart(@Session('cart') cart?: Cart) {
    return cart ?? { items: {} };
  }

  @Post('fail')
  fail(@Session() session: SampleSession) {
    throw this.shop.failOrder(session);
  }
}
