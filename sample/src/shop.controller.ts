import { BadRequestException, Body, Controller, Get, Post } from '@nestjs/common';
import { Session, type SessionMixin } from 'nest-session';

type Cart = { items: Record<string, number> };
type ShopSession = { count?: number; cart?: Cart };

@Controller()
export class ShopController {
  @Post('counter')
  count(@Session() session: SessionMixin<ShopSession>) {
    const count = (session.get('count') ?? 0) + 1;
    session.set('count', count);
    return { count };
  }

  @Post('cart')
  add(@Session() session: SessionMixin<ShopSession>, @Body('item') item = 'apple') {
    const cart = session.setDefault('cart', { items: {} });
    cart.items[item] = (cart.items[item] ?? 0) + 1;
    // A change inside a nested value is invisible to the session: say so.
    session.modified = true;
    return cart;
  }

  @Get('cart')
  cart(@Session('cart') cart?: Cart) {
    return cart ?? { items: {} };
  }

  @Post('fail')
  fail(@Session() session: SessionMixin<ShopSession & { lastError?: string }>) {
    session.set('lastError', 'the order failed');
    // The session is still saved: the 400 carries its cookie, as in Flask.
    throw new BadRequestException('Out of stock; your session remembers this failure.');
  }
}
