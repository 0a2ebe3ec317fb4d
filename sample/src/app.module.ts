import { Module } from '@nestjs/common';
import { SessionModule } from 'nest-session';
import { AuthController } from './auth.controller.js';
import { sessionOptions } from './session-options.js';
import { ShopController } from './shop.controller.js';

@Module({
  imports: [SessionModule.forRootAsync({ useFactory: () => sessionOptions() })],
  controllers: [AuthController, ShopController],
})
export class AppModule {}
